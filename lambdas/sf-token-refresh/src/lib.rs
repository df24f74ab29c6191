//! sf-token-refresh.
