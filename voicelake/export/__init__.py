"""A finished lake -> ML training material: reading the lake by its files (``lake``), utterance
units (``units``), audio shards (``shards``), per-unit features (``ml_features``), manifests
(``manifests``) and the dataset card (``dataset_card``).

May import ``voicelake.analysis`` (for its method notes), ``voicelake.layout``,
``voicelake.storage``, ``voicelake.audio`` and ``voicelake.model``; never Beam, records or media.
"""
