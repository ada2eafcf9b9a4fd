"""Where a SENSE model finds the meaning of an utterance (section VII of the paper).

- :mod:`sense.analysis.attention`: the numbers, from attention logits alone:
  the mean logit against relative position (Figure 2), the attention mass of
  the first and last frames, the logit sum of each word (Table IX) and content
  against function words.
- :mod:`sense.analysis.alignment`: word boundaries from a CTM or TextGrid
  file, from forced alignment with a wav2vec2 CTC model, or from WhisperX.
- :mod:`sense.analysis.vad`: voice activity from the Silero VAD package.
- :mod:`sense.analysis.pooling`: retrieval with the learned attention against
  uniform mean pooling over the same frames.
- :mod:`sense.analysis.run`: the whole analysis of a trained model over a
  manifest of utterances, written as figures and tables (``sense attention``);
  :mod:`sense.analysis.settings` holds its settings and the pooling
  comparison's inputs; :mod:`sense.analysis.report` formats its Markdown report.
"""
