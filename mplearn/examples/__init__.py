"""Example scripts written the way such scripts get written, for the diagnosis notebook (14)."""
