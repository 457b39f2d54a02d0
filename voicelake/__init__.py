"""The domain library under the pipeline: KVS media (``kvs_client``, ``mkv_parser``), call records
(``records``), audio and features (``audio``, ``features``), lake storage (``storage``) and the
values that travel between stages (``model``).

Layers go one way: ``voicelake`` (domain, no Beam) <- ``transforms`` (one PTransform per arrow of
the data flow) <- ``pipeline`` (composition: graph, options, commands).  ``schemas`` (the tables)
sits beside ``voicelake`` at the bottom.
"""
