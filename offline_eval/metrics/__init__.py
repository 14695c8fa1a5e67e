"""Pure metric transforms: DataFrame(s) + typed params -> DataFrame. No IO, no session."""
