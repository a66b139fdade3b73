// The attachments test page's bundle (tests/web/test_attachment_vectors.py,
// tests/web/test_photos.py): the attachment vectors' runner, and the module itself for
// tests that drive it directly in the browser. Never shipped with the app.
import * as attachments from "../src/attachments";
import "./attachment_vectors";

(globalThis as unknown as { relaisAttachments: unknown }).relaisAttachments = attachments;
