"""The organisation's MSSanté archiver: what an archive holds, how it is packaged (IHE
XDM, CDA R2 niveau 1, the mail), and how it is delivered. docs/archive.md."""
