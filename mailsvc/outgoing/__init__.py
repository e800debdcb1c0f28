"""The outgoing half: the outgoing register (sổ văn bản đi), its delivery lines, tracking
of the status messages other agencies send back, recall and issuing."""
