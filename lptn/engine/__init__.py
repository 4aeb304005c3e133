"""The engine: options, runtime (device/precision/distribution), logging, checkpoint I/O and
the runners (train, test, speed, enhance) that drive the registries."""
