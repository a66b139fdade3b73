"""Encrypted attachments: the server stores opaque blobs and decides who may fetch them.

The server never holds an attachment in clear and never decodes one; see
docs/attachments.md.
"""
