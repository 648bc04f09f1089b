"""Reading saved runs and writing reports: `results` (numbers), `plots`, the run, bootstrap and sweep
reports, and `render` (which report a folder gets). Reads run folders only; never trains."""
