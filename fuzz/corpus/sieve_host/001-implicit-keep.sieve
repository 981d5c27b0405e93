# An empty script: the implicit keep files into INBOX.
