"""Writing tags where photo managers read them (XMP sidecars, embedded XMP/IPTC), and taking them back."""
