"""The tiny models of :mod:`sense.demo.tiny`, where the tests and benchmarks import them.

They live with the demo, which trains them without a model hub; the tests
(:mod:`sense.testing` is the layer above the demo) use the same builders.

Example
-------
>>> from sense.testing.tiny import TINY_HIDDEN, build_tiny_w2v_bert
>>> TINY_HIDDEN
32
"""

from sense.demo.tiny import *  # noqa: F403
from sense.demo.tiny import __all__  # noqa: F401
