"""The benchmarking harness behind ``ttrl bench``.

``plan`` (what runs), ``sources`` (the groups: a file read once, or a simulation), ``shard`` (one
shard job: grade, estimate, score), ``journal`` (finished jobs, kept for ``--resume``), ``runner``
(the run and the result), ``scaleout`` (worker processes, Ray), ``simulate``, ``builtin`` and ``report``.
"""
