"""The composition root: the market's services built once, every domain event's
subscribers in one list, start-up chores, and the background loops."""
