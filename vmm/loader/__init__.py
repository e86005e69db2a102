"""Boot loaders: parse kernel images and lay out a boot protocol in guest memory."""
