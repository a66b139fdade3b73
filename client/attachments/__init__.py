"""Encrypted attachments for the Relais SDK: photo pipeline, streaming encryption,
descriptor, and transfer. See docs/attachments.md and docs/protocol.md ("Attachments").

Sending: ``descriptor = await send_attachment(api, room=..., message_id=..., source=...,
mime=...)`` then send a message with that ``message_id`` carrying ``descriptor.to_dict()``
inside its encrypted content. Receiving: ``descriptor_from_dict(...)`` on the decrypted
content, then ``receive_attachment(api, descriptor, path)``; a photo's preview is in the
descriptor (``open_thumbnail``). ``RelaisClient`` does all of
this itself (``send_photo``, ``send_file``, ``Message.attachment``, ``save_attachment``:
``client/files.py``).
"""

from client.attachments.descriptor import (
    AttachmentDescriptor,
    ThumbnailDescriptor,
    build_descriptor,
    descriptor_from_dict,
    descriptor_from_json,
)
from client.attachments.errors import AttachmentError, AttachmentServerError, ClientCode
from client.attachments.images import ImageOptions, ProcessedImage, process_image
from client.attachments.receiving import open_thumbnail, receive_attachment
from client.attachments.sending import prepare_document, prepare_photo, send_attachment
from client.attachments.transfer import AttachmentApi

__all__ = [
    "AttachmentApi",
    "AttachmentDescriptor",
    "AttachmentError",
    "AttachmentServerError",
    "ClientCode",
    "ImageOptions",
    "ProcessedImage",
    "ThumbnailDescriptor",
    "build_descriptor",
    "descriptor_from_dict",
    "descriptor_from_json",
    "open_thumbnail",
    "prepare_document",
    "prepare_photo",
    "process_image",
    "receive_attachment",
    "send_attachment",
]
