"""A demo market: parties, registered assets and listings to look at."""
