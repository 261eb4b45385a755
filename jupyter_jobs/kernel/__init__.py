"""The kernel side: the %%job magic and its REST client."""
