"""Pure metric transforms: DataFrame(s) + typed params -> DataFrame. No IO, no session."""

# The bound of "small enough to broadcast" for the one side of a join that is keyed by a day's
# clicks or flagged requests (not by its impressions): up to this many rows it is sent to every
# task, and the day's impression rows are then never shuffled for that join.
BROADCAST_ROWS_MAX = 2_000_000
