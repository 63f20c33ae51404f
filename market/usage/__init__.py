"""Usage-controlled delivery (可用不可见，用途可控可计量): sandbox queries and metered look-ups."""
