// Files the build bundles as bytes (esbuild's "binary" loader, build.mjs).
declare module "*.ttf" {
  const data: Uint8Array;
  export default data;
}
