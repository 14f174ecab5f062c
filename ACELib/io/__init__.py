"""All file I/O and axis-order conversions live here (images, atomic writes, weight files)."""
