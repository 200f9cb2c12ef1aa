"""aitop's modal screens: confirmations, the signal picker, the replica count, the inspect view
and the key help. They show what they are handed and answer with `dismiss`; they never fetch."""
