"""Fuzzing of the reply decoder and checks (docs/reliability.md "Fuzzing"): the on-wire
oracle, the atheris target, its runner and the seed-corpus capture. CPython only."""
