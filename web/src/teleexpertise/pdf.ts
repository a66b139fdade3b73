// Transcript PDFs in the browser with pdf-lib, laid out as the SDK's documents/pdf.py
// lays them (A4, a title, a table of label and value rows, then who wrote what and
// when, grey notes, a footer with the page number). The font is Bitstream Vera, the
// SDK's font, embedded as a subset (fontkit), so accented French renders the same on
// every reader and pdftotext reads the text back; a character the font lacks is shown
// as "?" rather than silently dropped. This module and its libraries load only when
// documents are written, a report's or a request's (a separate chunk of the build).
import fontkit from "@pdf-lib/fontkit";
import { PDFDocument, type PDFFont, type PDFPage, rgb } from "pdf-lib";
import VERA from "./fonts/Vera.ttf";
import VERA_BOLD from "./fonts/VeraBd.ttf";

export interface TranscriptEntry {
  time: Date;
  author: string;
  authorDetail: string;
  text: string;
  notes: string[];
}

export interface Transcript {
  title: string;
  header: [string, string][];
  entries: TranscriptEntry[];
  footer: string;
  author: string;
  subject: string;
  keywords: string[];
}

const CM = 72 / 2.54;
const A4: [number, number] = [595.2756, 841.8898];
const LEFT = 1.8 * CM;
const TOP = 1.6 * CM;
const BOTTOM = 1.6 * CM;
const WIDTH = A4[0] - 2 * LEFT;
const LABEL_WIDTH = 4.2 * CM;
const GREY = rgb(0.5, 0.5, 0.5);

/** 02/12/2026 14:05 on this device's clock, as the SDK prints times. */
export function printedTime(moment: Date): string {
  const two = (n: number) => String(n).padStart(2, "0");
  return `${two(moment.getDate())}/${two(moment.getMonth() + 1)}/${moment.getFullYear()} ${two(moment.getHours())}:${two(moment.getMinutes())}`;
}

class Layout {
  page!: PDFPage;
  y = 0;

  constructor(
    private readonly pdf: PDFDocument,
    readonly regular: PDFFont,
    readonly bold: PDFFont,
    private readonly covered: Set<number>,
  ) {
    this.newPage();
  }

  newPage(): void {
    this.page = this.pdf.addPage(A4);
    this.y = A4[1] - TOP;
  }

  printable(text: string): string {
    return [...text].map((c) => (this.covered.has(c.codePointAt(0)!) || c === "\n" ? c : "?")).join("");
  }

  /** ``text`` broken into lines of at most ``width`` points (words kept whole when
   * they fit a line; a longer word is cut). */
  lines(text: string, font: PDFFont, size: number, width: number): string[] {
    const out: string[] = [];
    for (const paragraph of this.printable(text).split("\n")) {
      let line = "";
      for (const word of paragraph.split(" ")) {
        const candidate = line ? `${line} ${word}` : word;
        if (font.widthOfTextAtSize(candidate, size) <= width) {
          line = candidate;
          continue;
        }
        if (line) out.push(line);
        line = word;
        while (font.widthOfTextAtSize(line, size) > width && line.length > 1) {
          let cut = line.length - 1;
          while (cut > 1 && font.widthOfTextAtSize(line.slice(0, cut), size) > width) cut -= 1;
          out.push(line.slice(0, cut));
          line = line.slice(cut);
        }
      }
      out.push(line);
    }
    return out;
  }

  ensure(height: number): void {
    if (this.y - height < BOTTOM) this.newPage();
  }

  write(text: string, options: { font?: PDFFont; size?: number; leading?: number; x?: number; width?: number; grey?: boolean } = {}): void {
    const font = options.font ?? this.regular;
    const size = options.size ?? 9.5;
    const leading = options.leading ?? size * 1.32;
    for (const line of this.lines(text, font, size, options.width ?? WIDTH)) {
      this.ensure(leading);
      this.y -= leading;
      this.page.drawText(line, { x: LEFT + (options.x ?? 0), y: this.y + leading - size, size, font, ...(options.grey ? { color: GREY } : {}) });
    }
  }

  row(label: string, value: string): void {
    const size = 9;
    const leading = 11.5;
    const labels = this.lines(label, this.regular, size, LABEL_WIDTH - 6);
    const values = this.lines(value, this.regular, size, WIDTH - LABEL_WIDTH);
    const count = Math.max(labels.length, values.length);
    this.ensure(count * leading + 2);
    for (let i = 0; i < count; i += 1) {
      this.y -= leading;
      const base = this.y + leading - size;
      if (labels[i]) this.page.drawText(labels[i]!, { x: LEFT, y: base, size, font: this.regular });
      if (values[i]) this.page.drawText(values[i]!, { x: LEFT + LABEL_WIDTH, y: base, size, font: this.regular });
    }
    this.y -= 2;
  }

  space(points: number): void {
    this.y -= points;
  }
}

/** The transcript as a PDF (A4). */
export async function transcriptPdf(transcript: Transcript): Promise<Uint8Array> {
  const pdf = await PDFDocument.create();
  pdf.registerFontkit(fontkit);
  const regular = await pdf.embedFont(VERA, { subset: true });
  const bold = await pdf.embedFont(VERA_BOLD, { subset: true });
  const covered = new Set(regular.getCharacterSet());
  const layout = new Layout(pdf, regular, bold, covered);
  pdf.setTitle(layout.printable(transcript.title));
  pdf.setAuthor(layout.printable(transcript.author));
  pdf.setSubject(layout.printable(transcript.subject));
  pdf.setKeywords(transcript.keywords);
  pdf.setCreator("Relais");
  pdf.setProducer("Relais (pdf-lib)");
  pdf.setLanguage("fr-FR");

  layout.write(transcript.title, { font: bold, size: 15, leading: 19 });
  layout.space(0.3 * CM);
  for (const [label, value] of transcript.header) layout.row(label, value);
  layout.page.drawLine({ start: { x: LEFT, y: layout.y }, end: { x: LEFT + WIDTH, y: layout.y }, thickness: 0.5, color: GREY });
  layout.space(0.4 * CM);
  for (const entry of transcript.entries) {
    const who = `${printedTime(entry.time)} — ${entry.author}${entry.authorDetail ? ` (${entry.authorDetail})` : ""}`;
    layout.ensure(3 * 12.5);
    layout.write(who, { font: bold });
    if (entry.text) layout.write(entry.text);
    for (const note of entry.notes) layout.write(note, { size: 8, leading: 10, grey: true });
    layout.space(0.25 * CM);
  }
  const footer = layout.printable(transcript.footer);
  const pages = pdf.getPages();
  for (const [index, page] of pages.entries()) {
    const number = String(index + 1);
    page.drawText(footer, { x: LEFT, y: 0.9 * CM, size: 7.5, font: regular, color: GREY });
    page.drawText(number, { x: A4[0] - LEFT - regular.widthOfTextAtSize(number, 7.5), y: 0.9 * CM, size: 7.5, font: regular, color: GREY });
  }
  return pdf.save();
}
