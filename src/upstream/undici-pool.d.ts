// undici's Pool on its own (see client.ts): the package has no exports map, so the file is
// importable; its type is the one the package's index declares.
declare module 'undici/lib/dispatcher/pool.js' {
  import { Pool } from 'undici';
  export default Pool;
}
