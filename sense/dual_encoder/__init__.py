"""The LLM speech-text dual encoder (seed 003): audio tokens, an extended LLM, contrastive training.

- :mod:`~sense.dual_encoder.tokens`: a speech encoder layer at 25 Hz, k-means, the token cache;
- :mod:`~sense.dual_encoder.model`: the LLM with its vocabulary extended by the audio tokens;
- :mod:`~sense.dual_encoder.brain`: contrastive training (SpeechBrain), bitext mixing;
- :mod:`~sense.dual_encoder.metrics`: speech -> transcript R@1 and WER, language-group means;
- :mod:`~sense.dual_encoder.evaluation`: an exported dual encoder in the benchmark runner;
- :mod:`~sense.dual_encoder.export`: the exported folder;
- :mod:`~sense.dual_encoder.inference`: ``from_hparams`` loading;
- :mod:`~sense.demo.dual_encoder`: the no-download run on the demo corpus.
"""
