"""``sense serve``: an index searched over HTTP, a JSON API and one web page.

- :mod:`sense.serve.query`: a request's top-k and filters, checked; hits as JSON;
- :mod:`sense.serve.searcher`: the index and its model, answering queries;
- :mod:`sense.serve.media`: the recordings of the index, served by number only;
- :mod:`sense.serve.upload`: uploaded or recorded audio decoded (soundfile, then PyAV);
- :mod:`sense.serve.app`: the FastAPI application; ``static/``: the page.

Example
-------
>>> from sense.serve.query import parse_k
>>> parse_k("10")
10
"""
