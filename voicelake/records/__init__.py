"""Call records -> ``CallSpec``: Firehose objects split into records (``firehose``), Connect
contact trace records (``ctr``), Chime SDRs joined with their streaming-status events
(``chime_records``) and the field rules they share (``record_fields``).

May import ``voicelake.model`` and the standard library; never Beam, media or analysis code.
"""
