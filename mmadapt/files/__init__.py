"""Files mmadapt writes: atomic publishing, directory locks, content digests."""
