//! sf-secret-rotation.
