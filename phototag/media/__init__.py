"""Decoders for what photographers keep besides JPEGs: RAW files, HEIC/AVIF, videos.

``kinds`` says what a file is from its name; ``pairs`` decides which files are one item
(RAW+JPEG, Live Photos); ``raw``, ``heif`` and ``video`` decode. Heavy libraries (rawpy,
PyAV, pillow-heif) are imported inside the functions that use them.
"""
