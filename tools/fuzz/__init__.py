"""Fuzzing of the reply decoder and checks (README "Fuzzing"): the on-wire oracle, the atheris
target, its runner and the seed-corpus capture. CPython only."""
