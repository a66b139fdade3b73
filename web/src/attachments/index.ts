// Photos and files: the photo pipeline and the attachment stream encryption
// (docs/protocol.md §11, docs/attachments.md). Nothing yet.
export {};
