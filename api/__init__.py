"""Flask API, auth, and the `flowyard` command line."""
