// placeholder: the GStreamer plugin is being written (issue 4)
