"""`fishnet demo`, the main job: seed the samples, materialise every asset, tick the sensors once,
drive the processing chain to the end, print a summary. One module per domain's hooks."""
