"""One module per `banditlb` sub-command."""
