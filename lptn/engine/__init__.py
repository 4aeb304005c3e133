"""The runners: train, test, speed and enhance. They sit above every other package and drive
the registries; nothing in lptn imports them except the command-line entry points."""
