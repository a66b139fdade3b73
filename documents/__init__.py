"""Health documents Relais produces: the patient identity (INS), CDA R2 niveau 1
documents and transcript PDFs. Pure Python (lxml, ReportLab, Pillow), no Django: the
archiver and the téléexpertise report both build on it. See docs/documents.md."""
