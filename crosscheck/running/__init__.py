"""Running a case in each implementation: the runner, the trajectory record every run
produces, the helper process beside this one, and the environment a run depends on (signals,
BLAS threads, environment variables, the versions line)."""
