"""One module per API resource, each exposing a blueprint that `api.app` registers."""
