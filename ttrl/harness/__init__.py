"""The benchmarking harness behind ``ttrl bench``: runner, simulation, reports and scale-out."""
