"""The MSSanté archiver: rooms delivered as IHE XDM mails (docs/archive.md)."""
