"""The only code that talks to a Docker engine (the only importer of `docker`): which engine
(`urls`), how to reach an ssh:// one (`ssh`), the connection and its calls (`client`), its
streams (`streams`), and its failures in words for the user (`errors`, `translate`)."""
