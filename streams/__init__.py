"""The running system: the faust app and agents, the camera producer, the CLI."""
