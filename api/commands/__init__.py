"""One module per `flowyard` sub-command group; `api.cli` lists them."""
