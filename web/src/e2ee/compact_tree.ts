// The right edge of an RFC 9162 Merkle tree: the perfect subtrees a tree of any size
// is made of. A monitor appends every entry's leaf hash to it and compares its root
// with a signed head, keeping only O(log n) hashes between passes (as e2ee/merkle.py's
// CompactTree).
import { b64u, unb64u } from "./bytes";
import { CryptoError } from "./errors";
import { emptyRoot, nodeHash } from "./merkle";

export interface CompactTreeJson {
  size: number;
  edge: [number, string][];
}

export class CompactTree {
  private constructor(
    public size: number,
    private readonly edge: [number, Uint8Array][],
  ) {}

  static empty(): CompactTree {
    return new CompactTree(0, []);
  }

  static fromJson(value: CompactTreeJson | undefined): CompactTree {
    if (!value) return CompactTree.empty();
    const edge = value.edge.map(([height, node]) => [height, unb64u(node, 32, "edge")] as [number, Uint8Array]);
    const heights = edge.map(([height]) => height);
    const total = heights.reduce((sum, height) => sum + 2 ** height, 0);
    if (total !== value.size || heights.some((height, i) => i > 0 && height >= heights[i - 1]!)) {
      throw new CryptoError("bad_encoding", "compact tree does not match its size");
    }
    return new CompactTree(value.size, edge);
  }

  toJson(): CompactTreeJson {
    return { size: this.size, edge: this.edge.map(([height, node]) => [height, b64u(node)]) };
  }

  async append(leafHash: Uint8Array): Promise<void> {
    this.size += 1;
    let height = 0;
    let node = leafHash;
    while (this.edge.length && this.edge[this.edge.length - 1]![0] === height) {
      const [, left] = this.edge.pop()!;
      node = await nodeHash(left, node);
      height += 1;
    }
    this.edge.push([height, node]);
  }

  async root(): Promise<Uint8Array> {
    if (!this.edge.length) return emptyRoot();
    let result = this.edge[this.edge.length - 1]![1];
    for (let i = this.edge.length - 2; i >= 0; i -= 1) result = await nodeHash(this.edge[i]![1], result);
    return result;
  }
}
