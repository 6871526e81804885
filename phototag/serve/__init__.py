"""``phototag serve``: the recognition API and a page to browse and correct the library.

A client of the library like ``phototag.cli``: the HTTP layer (:mod:`.app`) parses requests,
calls the library, and maps :mod:`phototag.errors` to JSON errors with 4xx/5xx codes.
"""
