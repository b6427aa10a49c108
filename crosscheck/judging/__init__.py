"""Judging the runs: the local question (the manual backward at each framework's own
parameters), the update question (a hand-written optimizer), the global question (the
trajectories within the measured envelope), and the diagnostics that say what a run does and
what a mistake likely is (kinks, dead units, factors, the documents' transcripts)."""
