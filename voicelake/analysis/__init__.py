"""A call's channels -> its features, talk segments and WAVs: the streaming per-call pass
(``call_audio``), the feature definitions (``features``) and the neural VAD (``vad``, with the
graph rewrite ``vad_graph``).

May import ``voicelake.media``, ``voicelake.audio`` and ``voicelake.model``; never Beam, records or
export code.
"""
