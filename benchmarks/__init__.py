"""Side-by-side speed measurements of ``sense`` (not tests: nothing here asserts a time).

``python -m benchmarks`` (or ``make bench``) runs, on a GPU when one is present
and on the CPU otherwise:

1. :mod:`benchmarks.train_step`: our training step (``DistillationBrain``:
   batched torch front-end, masked pooling, cached teacher embeddings)
   against the SpeechBrain SENSE recipe's step (``W2VBert`` with its numpy
   front-end, ``AttentionPooling``, a BGE-M3 forward on every step), same
   student and teacher sizes, same batch, same precision, in alternation:
   throughput in seconds of audio per second, peak memory, model FLOPs
   utilisation on a GPU (:mod:`benchmarks.flops` derives the FLOPs);
2. :mod:`benchmarks.frontend`: ``W2VBertFbank`` against transformers'
   ``SeamlessM4TFeatureExtractor``, with the parity error;
3. :mod:`benchmarks.inference`: real-time factor of ``sense.inference.SENSE``
   embedding a folder of files, batched;
4. :mod:`benchmarks.retrieval`: exact search of 5,000 queries against a
   280,000 x 1024 database, queries per second, agreement with brute force;
5. :mod:`benchmarks.padding`: the padded fraction of the duration sampler's
   batches on Common Voice clip durations, by sort window, against random
   batches and SpeechBrain's ``DynamicBatchSampler`` (numpy, no GPU).

Results go to a JSON file and a markdown table (``--output``, default
``results/bench.json`` and ``results/bench.md``). Model sizes and their
construction are in :mod:`benchmarks.models`.
"""
