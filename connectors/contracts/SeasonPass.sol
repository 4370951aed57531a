// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title SeasonPass: ERC-1155 passes (one token id per tier, many copies of each).
/// @notice Minimal: the organizer mints single ids or batches; holders transfer them. Enough to
/// emit real `TransferSingle` and `TransferBatch` logs for the listener's tests.
/// Transfers to contracts are not supported (no receiver hook): passes go to wallets.
contract SeasonPass {
    event TransferSingle(address indexed operator, address indexed from, address indexed to, uint256 id, uint256 value);
    event TransferBatch(address indexed operator, address indexed from, address indexed to, uint256[] ids, uint256[] values);
    event ApprovalForAll(address indexed account, address indexed operator, bool approved);

    address public immutable organizer;
    mapping(uint256 => mapping(address => uint256)) private _balances;
    mapping(address => mapping(address => bool)) private _operators;

    error OnlyOrganizer();
    error NotOwnerNorApproved();
    error InsufficientBalance();
    error LengthMismatch();
    error InvalidReceiver();

    constructor() {
        organizer = msg.sender;
    }

    function supportsInterface(bytes4 id) external pure returns (bool) {
        return id == 0x01ffc9a7 || id == 0xd9b67a26; // ERC165, ERC1155
    }

    function balanceOf(address account, uint256 id) external view returns (uint256) {
        return _balances[id][account];
    }

    function setApprovalForAll(address operator, bool approved) external {
        _operators[msg.sender][operator] = approved;
        emit ApprovalForAll(msg.sender, operator, approved);
    }

    function isApprovedForAll(address account, address operator) external view returns (bool) {
        return _operators[account][operator];
    }

    function mint(address to, uint256 id, uint256 value) external {
        if (msg.sender != organizer) revert OnlyOrganizer();
        if (to == address(0)) revert InvalidReceiver();
        _balances[id][to] += value;
        emit TransferSingle(msg.sender, address(0), to, id, value);
    }

    function mintBatch(address to, uint256[] calldata ids, uint256[] calldata values) external {
        if (msg.sender != organizer) revert OnlyOrganizer();
        if (to == address(0)) revert InvalidReceiver();
        if (ids.length != values.length) revert LengthMismatch();
        for (uint256 i = 0; i < ids.length; i++) {
            _balances[ids[i]][to] += values[i];
        }
        emit TransferBatch(msg.sender, address(0), to, ids, values);
    }

    function safeTransferFrom(address from, address to, uint256 id, uint256 value, bytes calldata) external {
        _authorize(from, to);
        _move(from, to, id, value);
        emit TransferSingle(msg.sender, from, to, id, value);
    }

    function safeBatchTransferFrom(
        address from,
        address to,
        uint256[] calldata ids,
        uint256[] calldata values,
        bytes calldata
    ) external {
        _authorize(from, to);
        if (ids.length != values.length) revert LengthMismatch();
        for (uint256 i = 0; i < ids.length; i++) {
            _move(from, to, ids[i], values[i]);
        }
        emit TransferBatch(msg.sender, from, to, ids, values);
    }

    function _authorize(address from, address to) private view {
        if (from != msg.sender && !_operators[from][msg.sender]) revert NotOwnerNorApproved();
        if (to == address(0)) revert InvalidReceiver();
    }

    function _move(address from, address to, uint256 id, uint256 value) private {
        if (_balances[id][from] < value) revert InsufficientBalance();
        _balances[id][from] -= value;
        _balances[id][to] += value;
    }
}
