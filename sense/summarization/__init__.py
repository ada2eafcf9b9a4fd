"""Speech summarization from sentence embeddings (section V-C, appendix B2 of the paper).

A document is a sequence of sentence vectors (text: the teacher's embedding of
each sentence; speech: the SENSE embedding of each utterance). A linear
projection and a GELU bring them to the width of a pre-trained seq2seq model
(BARThez), whose encoder reads them through ``inputs_embeds`` and whose
decoder writes the summary.

* :mod:`~sense.summarization.model`: the projection and the seq2seq wrapper;
* :mod:`~sense.summarization.text`: sentence splitting;
* :mod:`~sense.summarization.embeddings`: sentence and utterance embeddings,
  computed once into a :class:`sense.teacher_cache.TeacherCache`;
* :mod:`~sense.summarization.brain`: training on :class:`sense.finetune.FineTuneBrain`;
* :mod:`~sense.summarization.metrics`: ROUGE-L for French, BERTScore;
* :mod:`~sense.summarization.export` and :mod:`~sense.summarization.inference`:
  the exported folder and :class:`Summarizer`.
"""
