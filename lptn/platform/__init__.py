"""The platform layer: options, runtime (device, precision, distribution), AMP and device
backends, checkpoint I/O, torch.compile support and logging.

It sits beneath archs, data, losses, metrics, models and inference, and imports none of them;
the runners in :mod:`lptn.engine` sit above everything.
"""
